from frameworks.batch.main import main

main()
