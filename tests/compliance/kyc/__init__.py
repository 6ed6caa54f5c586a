"""KYC tiers and limits, the manual KYC provider and the KYC vendor plugins."""
