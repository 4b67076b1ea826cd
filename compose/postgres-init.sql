-- Run by the postgres image on its first start only (an empty data volume):
-- one database per service, each owned by the compose user.
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE notifications;
