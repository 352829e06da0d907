"""The `memproxy` command line: thin commands over the core; Typer and Rich live only here."""
