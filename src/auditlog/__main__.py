from auditlog.cli.main import main

raise SystemExit(main())
