from xnatfs.cli import main

raise SystemExit(main())
