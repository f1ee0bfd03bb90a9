"""From decoded packets to stored records: validate (pure), then batch into the store."""
