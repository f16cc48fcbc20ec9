"""Custom resource that keeps Auto Scaling from rebalancing the fleet across Availability Zones.

AZ rebalancing terminates running instances to even out zones, which would interrupt busy
agents; the fleet suspends it on its group when the group is created or replaced.
"""
