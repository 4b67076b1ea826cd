from inventory.main import main

main()
