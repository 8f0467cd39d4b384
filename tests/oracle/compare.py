import csv, sys
def load(p, key):
    with open(p, newline='') as f:
        return {r[key]: r for r in csv.DictReader(f)}
tally, oracle = sys.argv[1], sys.argv[2]
bad = 0
td, od = load(f"{tally}/devices.csv", "device_id"), load(f"{oracle}/oracle_devices.csv", "device_id")
if td.keys() != od.keys(): print("device sets differ"); bad += 1
for k in od:
    for c in ["online_slots", "points", "eligible", "reasons"]:
        if td.get(k, {}).get(c) != od[k][c]:
            bad += 1; print(f"device {k} {c}: tally={td.get(k,{}).get(c)!r} oracle={od[k][c]!r}")
ta, oa = load(f"{tally}/allocations.csv", "account_id"), load(f"{oracle}/oracle_accounts.csv", "account_id")
if ta.keys() != oa.keys(): print("account sets differ"); bad += 1
for k in oa:
    for c in ["points", "token_units"]:
        if ta.get(k, {}).get(c) != oa[k][c]:
            bad += 1; print(f"account {k} {c}: tally={ta.get(k,{}).get(c)!r} oracle={oa[k][c]!r}")
print(f"{len(od)} devices, {len(oa)} accounts: {'AGREE' if bad == 0 else f'{bad} DIFFERENCES'}")
sys.exit(1 if bad else 0)
