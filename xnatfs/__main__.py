from xnatfs.app.cli import main

raise SystemExit(main())
