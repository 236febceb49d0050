from mesos_local.main import main

main()
