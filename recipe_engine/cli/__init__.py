"""The `steer` command line: one module per subcommand, all built on the public Python API."""
