from services.oracle.service import main

main()
