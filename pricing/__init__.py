"""What to charge: go-livepeer's units of work, and the Modal cost of serving them.

- `contract.units`: the units go-livepeer debits for a request (pixels, ms of audio, tokens...).
- `pricing.gpus`: Modal's per-second prices, a dated table.
- `pricing.cost`: a job's share of the Modal bill and the break-even price per unit.
- `pricing.prices`: prices as aiModels.json (`price_per_unit`, `pixels_per_unit`, `currency`)
  and the Live Runner (`price_info`) take them.
- `pricing.results`: the measured-seconds file; `pricing.calibrate` makes one on this device.
- `pricing.aimodels`: read an aiModels.json and write prices into it, changing nothing else.
- `python -m pricing`: the command (see `pricing.__main__`).
"""
