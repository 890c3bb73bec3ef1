from abstream.cli import main

main()
