from mesos_master.main import main

main()
