from services.liquidator.service import main

main()
