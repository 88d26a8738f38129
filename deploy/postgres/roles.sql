-- The database roles of travis-logs, run by a superuser with psql (docker-compose's
-- postgres-roles service does, on every `up`; running it again changes nothing but the
-- passwords, so it also rotates them):
--
--   psql -v ON_ERROR_STOP=1 -v owner_password=... -v app_password=... -f roles.sql
--
-- travis_logs_owner owns the database and its tables: `travis-logs migrate` connects as it.
-- travis_logs_app is what ingest, worker, api and the operator commands connect as: it reads
-- and writes rows (LISTEN/NOTIFY need no grant) and can create, alter or drop nothing.
-- Neither may create databases or roles, so `migrate` finds the database made here.

SELECT 'CREATE ROLE travis_logs_owner'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'travis_logs_owner')
\gexec
SELECT 'CREATE ROLE travis_logs_app'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'travis_logs_app')
\gexec
ALTER ROLE travis_logs_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
ALTER ROLE travis_logs_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';

SELECT 'CREATE DATABASE travis_logs OWNER travis_logs_owner'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'travis_logs')
\gexec
-- A database that an earlier compose file let the superuser create and migrate.
ALTER DATABASE travis_logs OWNER TO travis_logs_owner;
REVOKE ALL ON DATABASE travis_logs FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE travis_logs TO travis_logs_app;

\connect travis_logs
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO travis_logs_owner;
GRANT USAGE ON SCHEMA public TO travis_logs_app;
SELECT format('ALTER TABLE public.%I OWNER TO travis_logs_owner', tablename)
FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'travis_logs_owner'
\gexec
-- Tables migrate creates later get the same grants.
ALTER DEFAULT PRIVILEGES FOR ROLE travis_logs_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO travis_logs_app;
ALTER DEFAULT PRIVILEGES FOR ROLE travis_logs_owner IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO travis_logs_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO travis_logs_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO travis_logs_app;
