-- One database role per job (least privilege). The master user (the owner) runs these
-- migrations and nothing else.
--   droughtwatch_app      the stage Lambdas: read and write the pipeline's rows, no DDL, no
--                         DELETE; on RDS it logs in with IAM database authentication (rds_iam).
--   droughtwatch_grafana  Grafana's datasource: SELECT only, as Grafana's docs recommend.
-- Roles belong to the server, not to one database: create them once, grant per database.
-- Every later migration that adds a table grants it to these roles too (a test checks).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'droughtwatch_app') THEN
        CREATE ROLE droughtwatch_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'droughtwatch_grafana') THEN
        CREATE ROLE droughtwatch_grafana LOGIN;
    END IF;
    -- RDS only: IAM database authentication for the stages' role
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
        GRANT rds_iam TO droughtwatch_app;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO droughtwatch_app, droughtwatch_grafana;

GRANT SELECT, INSERT, UPDATE ON ledger, metrics, runs TO droughtwatch_app;
GRANT USAGE ON SEQUENCE ledger_id_seq, metrics_id_seq, runs_id_seq TO droughtwatch_app;
-- the stages check the schema version at cold start
GRANT SELECT ON schema_migrations TO droughtwatch_app;

GRANT SELECT ON ledger, metrics, runs TO droughtwatch_grafana;
