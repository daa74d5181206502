"""Pure domain: money, codes, cards, ledger activities, outcomes, emails. No I/O here."""
