from services.marketdata.service import main

main()
