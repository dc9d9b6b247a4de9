from vicuna_tui.cli import main

raise SystemExit(main())
