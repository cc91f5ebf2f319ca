"""Post-trade kernel (pure): contracts, deliveries with quality claims, invoices, payments, ledger."""
