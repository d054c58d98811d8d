from lapak.cli.main import main

raise SystemExit(main())
