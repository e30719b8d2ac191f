-- How the stored SCIM resources compare (connector/sources/scim/filters.py COMPARISONS): the SCIM endpoint brings
-- them up to today's comparisons at start only when this differs (connector/sources/scim/upgrade.py), instead of
-- reading every resource at every start. One row at most; none in a store no SCIM endpoint has started on yet.

CREATE TABLE scim_comparisons (
    one integer PRIMARY KEY CHECK (one = 1),
    comparisons text NOT NULL
);
