"""The standing chaos campaign: the real connector under kills, outages and store trouble.

`python -m chaos --short` (run by `make test` through tests/chaos) or `make chaos` (the full
campaign, SQLite then PostgreSQL). One report is printed at the end; the exit status is 1
when anything accepted was lost, a final Verba state is wrong or a 5xx was seen.

Modules: processes (the connector and simulator as child processes, one or several connector
instances on one store), workload (SCIM writes like an identity provider sends them, to one
instance or round robin to several), directory (a real slapd the connector watches), oracle
(the expected Verba state, computed from the workload alone), overlap (no two instances on one
extension at once, from the simulator's call log), report (the table) and campaign (the phases,
in order). tests/chaos/test_scale_out.py uses them for three instances on one PostgreSQL store.
"""
