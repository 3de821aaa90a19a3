from services.auditor.audit import main

main()
