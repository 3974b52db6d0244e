"""Each promise of docs/guarantees.md, proved through the public API, the process and the wire."""
