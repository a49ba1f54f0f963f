"""Token usage and (later) spend: counting, pricing and the ledger."""
