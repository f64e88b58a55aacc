from purgebridge.cli import main

main()
