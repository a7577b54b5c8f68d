"""``python -m gdchaos.intermittency``: laminar phases and bursts in the loss and single weights."""

from gdchaos.analyses.intermittency import main

if __name__ == "__main__":
    main()
