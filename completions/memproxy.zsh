#compdef memproxy

_memproxy_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _MEMPROXY_COMPLETE=complete_zsh memproxy)
}

compdef _memproxy_completion memproxy
