from agora.cli import main

main()
