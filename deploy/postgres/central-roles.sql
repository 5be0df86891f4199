-- The trust's central store: run once as the postgres superuser on the central server
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -f central-roles.sql
-- then, as the owner, create the schema: social-monitor's migrations do it
--   (python -c "from monitor.store.postgres.central import CentralStore as C; C('dbname=socialmonitor user=social_monitor_owner host=/run/postgresql').migrate()")
CREATE ROLE social_monitor_owner LOGIN CREATEROLE;   -- owns the tables; runs the migrations
CREATE DATABASE socialmonitor OWNER social_monitor_owner;
-- one login role per gateway (the migration creates the group role social_monitor_gateway):
--   SELECT ... as the owner, for each school's gateway:
--   CREATE ROLE gw_oak_primary LOGIN PASSWORD '...' IN ROLE social_monitor_gateway;
--   INSERT INTO gateways (gateway_id, role_name) VALUES ('oak-primary-gw', 'gw_oak_primary');
-- the exporting role reads every gateway and writes nothing:
--   CREATE ROLE sm_exports LOGIN PASSWORD '...' IN ROLE social_monitor_reader;
