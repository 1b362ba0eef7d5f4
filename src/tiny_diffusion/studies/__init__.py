"""Studies of many runs: one setting varied (``ablation``) and the original's eight studies (``reproduce``)."""
