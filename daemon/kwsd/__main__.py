from kwsd.cli import main

raise SystemExit(main())
