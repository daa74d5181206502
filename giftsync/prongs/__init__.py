"""The jobs, written against ports only. The store prong: ``giftsync.prongs.store.StoreProng``."""
