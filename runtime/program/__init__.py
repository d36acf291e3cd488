"""The Program format (JSON + .npz, no pickle) and the checks a saved Program passes before it links."""
