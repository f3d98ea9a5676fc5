"""One module per subcommand: parse and validate arguments, call the engine, write output."""
