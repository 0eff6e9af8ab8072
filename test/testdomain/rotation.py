#!/usr/bin/python3
# rotation.py - move a test gMSA's password rotation to now, on the test DC.
#
# Samba rotates a gMSA's password when its key interval has passed: the next
# read of the account by the KDC or LDAP computes the new password, writes the
# new keys (msDS-KeyVersionNumber goes up) and keeps the old key's ID as
# msDS-ManagedPasswordPreviousId, which msDS-ManagedPassword then returns as
# the previous password. The shortest interval is one day, and the DC's clock
# cannot be moved without breaking Kerberos for every client, so this script
# moves the account's key back in time instead, through the DC's local
# database (as Samba's own gMSA tests do with their time override); the
# rotation itself is then Samba's.
#
# Usage (as root, with Samba's Python: /usr/bin/python3):
#   rotation.py SMB_CONF root-key         a KDS root key usable from 7 days back
#                                         (provision's is usable from 10 h back:
#                                         too late for a key placed 30 h back)
#   rotation.py SMB_CONF age NAME$        the key 3 key cycles (30 h) old and the
#                                         account 3 days old: due for rotation
#   rotation.py SMB_CONF lag NAME$        the account's keys set back to its
#                                         previous password: what a DC that has
#                                         not yet applied the rotation holds
#   rotation.py SMB_CONF catch-up NAME$   the account's keys set to its current
#                                         password again
#   rotation.py SMB_CONF show NAME$       JSON: kvno, key and previous key IDs
#
# Nothing secret is printed: key IDs are GKDI interval numbers.
import json
import subprocess
import sys
import time

import ldb
from samba.auth import system_session
from samba.dcerpc import gkdi, gmsa
from samba.gkdi import KEY_CYCLE_DURATION, Gkid
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB

NT_EPOCH_OFFSET = 11644473600  # seconds from 1601-01-01 to 1970-01-01


def nt_now():
    return int((time.time() + NT_EPOCH_OFFSET) * 10**7)


def open_db(smb_conf):
    lp = LoadParm()
    lp.load(smb_conf)
    return lp, SamDB(url=lp.private_path("sam.ldb"), session_info=system_session(), lp=lp)


def account(db, name, attrs):
    res = db.search(db.domain_dn(), scope=ldb.SCOPE_SUBTREE,
                    expression="(&(objectClass=msDS-GroupManagedServiceAccount)(sAMAccountName=%s))" % ldb.binary_encode(name),
                    attrs=attrs)
    if len(res) != 1:
        sys.exit("rotation.py: no gMSA %s" % name)
    return res[0]


def key_id(msg, attr):
    v = msg.get(attr, idx=0)
    if v is None:
        return None
    g = Gkid.from_key_envelope(ndr_unpack(gkdi.KeyEnvelope, bytes(v)))
    return "%d.%d.%d" % (g.l0_idx, g.l1_idx, g.l2_idx)


def root_key(smb_conf, lp, db):
    keys = db.search("CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,%s" % db.get_config_basedn(),
                     scope=ldb.SCOPE_ONELEVEL, expression="(objectClass=msKds-ProvRootKey)", attrs=["msKds-UseStartTime"])
    week_ago = nt_now() - 7 * 86400 * 10**7
    if any(int(k["msKds-UseStartTime"][0]) <= week_ago for k in keys):
        print(json.dumps({"root_key": "present"}))
        return
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 8 * 86400))
    subprocess.run(["samba-tool", "domain", "kds", "root-key", "create", "--use-start-time=" + start,
                    "-s", smb_conf, "-H", lp.private_path("sam.ldb")], check=True, stdout=subprocess.DEVNULL)
    print(json.dumps({"root_key": "created"}))


def age(db, name):
    m = account(db, name, ["msDS-ManagedPasswordId"])
    env = ndr_unpack(gkdi.KeyEnvelope, bytes(m["msDS-ManagedPasswordId"][0]))
    g = Gkid.from_key_envelope(env)
    old = Gkid.from_nt_time(g.start_nt_time() - 3 * KEY_CYCLE_DURATION)
    env.l0_index, env.l1_index, env.l2_index = old.l0_idx, old.l1_idx, old.l2_idx
    mod = ldb.Message(m.dn)
    mod["msDS-ManagedPasswordId"] = ldb.MessageElement(ndr_pack(env), ldb.FLAG_MOD_REPLACE, "msDS-ManagedPasswordId")
    created = time.strftime("%Y%m%d%H%M%S.0Z", time.gmtime(time.time() - 3 * 86400))
    mod["whenCreated"] = ldb.MessageElement(created, ldb.FLAG_MOD_REPLACE, "whenCreated")
    db.modify(mod, controls=["relax:0"])


def set_keys(db, name, which):
    m = account(db, name, ["msDS-ManagedPassword"])
    v = m.get("msDS-ManagedPassword", idx=0)
    if v is None:
        sys.exit("rotation.py: %s has no managed password" % name)
    pw = getattr(ndr_unpack(gmsa.MANAGEDPASSWORD_BLOB, bytes(v)).passwords, which)
    if pw is None:
        sys.exit("rotation.py: %s has no %s password" % (name, which))
    mod = ldb.Message(m.dn)
    mod["clearTextPassword"] = ldb.MessageElement(bytes(pw), ldb.FLAG_MOD_REPLACE, "clearTextPassword")
    db.modify(mod)


def show(db, name):
    m = account(db, name, ["msDS-KeyVersionNumber", "msDS-ManagedPasswordId", "msDS-ManagedPasswordPreviousId"])
    print(json.dumps({
        "kvno": int(m["msDS-KeyVersionNumber"][0]),
        "key": key_id(m, "msDS-ManagedPasswordId"),
        "previous_key": key_id(m, "msDS-ManagedPasswordPreviousId"),
    }))


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: rotation.py SMB_CONF root-key|age|lag|catch-up|show [NAME$]")
    smb_conf, cmd = sys.argv[1], sys.argv[2]
    lp, db = open_db(smb_conf)
    if cmd == "root-key":
        root_key(smb_conf, lp, db)
        return
    if len(sys.argv) != 4:
        sys.exit("rotation.py: %s needs the gMSA's sAMAccountName" % cmd)
    name = sys.argv[3]
    if cmd == "age":
        age(db, name)
    elif cmd == "lag":
        set_keys(db, name, "previous")
    elif cmd == "catch-up":
        set_keys(db, name, "current")
    elif cmd == "show":
        show(db, name)
    else:
        sys.exit("rotation.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main()
