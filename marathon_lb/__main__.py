from marathon_lb.main import main

main()
