from mesos_dns.main import main

main()
