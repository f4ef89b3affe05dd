-- The server's version, for the report.
SHOW server_version
