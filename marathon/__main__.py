from marathon.main import main

main()
