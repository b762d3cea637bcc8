"""Security: who is calling (access), what leaves the device (sealing), and later the TPM keystore.

It sits at the bottom of the dependency graph: it imports nothing else of the agent, and everything may
import it (see docs/architecture.md).
"""
