-- Run by the postgres image on its first start only (an empty data volume): one database per
-- service, each owned by the image's user. compose.yaml and this component both use it.
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE notifications;
