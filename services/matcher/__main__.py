from services.matcher.service import main

main()
