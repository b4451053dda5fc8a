"""``python -m basketflow.cli``: the same command as the ``basketflow`` script."""

from basketflow.cli import main

if __name__ == "__main__":
    main()
