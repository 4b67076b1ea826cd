"""Fresh ids for what a test creates in a mesh other tests share."""

import uuid


def unique(prefix: str) -> str:
    """prefix, a dash and 64 random bits in hex: an id no other test in the mesh draws."""
    # 64 bits: the soak test alone draws ~20,000 request ids, and 32 bits
    # collided about one run in 25 (a repeat request_id with other items)
    return f"{prefix}-{uuid.uuid4().hex[:16].upper()}"
