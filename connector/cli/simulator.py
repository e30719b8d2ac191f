"""`connector simulator`: serve the Verba Provisioning API v2 simulator on its own."""

from __future__ import annotations

import click

from connector.cli.options import echo
from connector.errors import ConnectorError
from connector.runtime import listen, why_not
from connector.simulator.app import serve
from connector.simulator.operations import MISSING_EXTENSION_SHAPES
from connector.simulator.seed import load_seed
from connector.simulator.state import MissingAnswer

NO_CONFIG = ("connector simulator reads no config, so it takes no --config: choose its address with --host and "
             "--port, and its environments, users and extensions with --seed. `connector run --config F` (and `make "
             "run`) starts it from a config itself, at [simulator] listen with [simulator] seed, when the config sets "
             "no [target] url.")


def _no_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """--config, which the other commands take, is a usage error that says what to do instead."""
    if value is not None:
        raise click.UsageError(NO_CONFIG, ctx)


@click.command(epilog=NO_CONFIG)
@click.option("--config", hidden=True, expose_value=False, callback=_no_config)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7002, show_default=True, type=int)
@click.option(
    "--seed", type=click.Path(exists=True, dir_okay=False), help="JSON file of environments, users, extensions."
)
@click.option("--token-ttl", default=3600.0, show_default=True, help="Seconds before an issued token expires.")
@click.option("--missing-extension", type=click.Choice(MISSING_EXTENSION_SHAPES),
              default="ok_empty", show_default=True,
              help="How getExtension/updateExtension answer for a missing extension; change it at run time "
                   "with POST /_sim/behaviour, which also takes an answer of your choosing: "
                   f'{{"missing_extension": {MissingAnswer.EXAMPLE}}}.')
def simulator(host: str, port: int, seed: str | None, token_ttl: float, missing_extension: str) -> None:
    """Serve the Verba Provisioning API v2 simulator (WSDL at /provisioning?wsdl).

    Its test control API is under /_sim/ (the call log, the state, fault injection, token expiry; README's "The
    simulator" shows it). For example, make the next createExtension fail, then Verba answer HTTP 503 to
    everything:

    \b
      curl localhost:7002/_sim/faults -d '{"operation": "createExtension", "status": "ERROR_GENERAL", "times": 1}'
      curl localhost:7002/_sim/faults -d '{"operation": "*", "http_status": 503}'
      curl -X DELETE localhost:7002/_sim/faults
    """
    seeded = load_seed(seed) if seed else None  # SeedError: every problem of the file, before anything listens
    try:
        listener = listen(host, port)
    except OSError as exc:
        raise ConnectorError(f"cannot listen on {host}:{port} ({why_not(exc)}); free the port, or pass --host / "
                             "--port") from None
    echo(f"simulator: http://{host}:{port}/provisioning (WSDL: ?wsdl, test control: /_sim/); stop with Ctrl-C")
    serve(listener, seeded, token_ttl, missing_extension)
