from memproxy_cli.cli.main import main

main()
