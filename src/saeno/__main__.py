"""``python -m saeno`` (also what ``torchrun -m saeno`` runs)."""

import sys

from saeno.cli.main import main

sys.exit(main())
