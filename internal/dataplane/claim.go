package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ClaimTable is the nftables table (family inet) whose holder programs the dataplane of the network
// namespace it lives in. The kernel ties a table created with the owner flag (Linux 5.12+) to the netlink
// socket that created it, which gives the claim every property it needs:
//   - it belongs to the network namespace, not to the file system, so a managed plugin (a mount namespace
//     of its own, the host's network) and a daemon on the host meet on the same name;
//   - creating it takes CAP_NET_ADMIN in that namespace, so no unprivileged user can take it first and
//     stop the daemon from starting (as any user could with an abstract unix socket);
//   - the kernel deletes it when the socket closes, however the holder ends, kill -9 included;
//   - nothing but its holder can delete it (other sockets get EPERM; `nft flush ruleset` skips it).
//
// It has no chains, so it has no effect on traffic. Its comment names the holder for the refusal message
// and for `nft list tables`.
const ClaimTable = "calico-claim"

// What golang.org/x/sys/unix does not define yet (include/uapi/linux/netfilter/nf_tables.h, libnftnl).
const (
	nftTableFlagOwner = 0x2 // NFT_TABLE_F_OWNER
	nftaTableUserdata = 0x6 // NFTA_TABLE_USERDATA
	udataTableComment = 0   // NFTNL_UDATA_TABLE_COMMENT: the user data TLV nft shows as the table's comment
)

// maxClaimComment fits the comment in the 256 bytes of user data the kernel keeps (NFT_USERDATA_MAXLEN)
// with its type and length bytes and its NUL.
const maxClaimComment = 250

// ClaimHeldError is Claim's refusal: another process holds this network namespace's claim.
type ClaimHeldError struct {
	Holder string // "pid N: command line" as the holder recorded it, or "" if it cannot be read
}

func (e *ClaimHeldError) Error() string {
	holder := ""
	if e.Holder != "" {
		holder = " (" + e.Holder + ")"
	}
	return "another calico-libnetwork" + holder + " already programs this host's dataplane (routes, " +
		"interfaces, nftables table inet calico); run one per host: stop the other (a managed plugin: " +
		"docker plugin disable; the systemd unit: systemctl stop calico-libnetwork), or set " +
		"CALICO_DATAPLANE=none on this one"
}

// Claim makes this process the only calico-libnetwork programming the dataplane of its network
// namespace until the returned Closer is closed. Two would fight over table inet calico, each removing
// the other's rules and sets, and containers would lose traffic at random. If another process holds the
// claim the error is a *ClaimHeldError.
func Claim() (io.Closer, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("claiming this host's dataplane: opening a netfilter netlink socket: %w", err)
	}
	if err := claimWith(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// claimAttempts bounds the retries when the holder goes away between our attempt and our look at it.
const claimAttempts = 3

func claimWith(conn *netlink.Conn) error {
	var err error
	for range claimAttempts {
		err = createClaimTable(conn, holderComment())
		// The kernel answers EPERM, not EEXIST, to anyone but the owner who names an owned table.
		if err == nil || !(errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EPERM)) {
			break
		}
		holder, lookErr := readHolder(conn)
		if errors.Is(lookErr, unix.ENOENT) {
			continue // freed meanwhile
		}
		if lookErr == nil {
			return &ClaimHeldError{Holder: holder}
		}
		if errors.Is(lookErr, unix.EPERM) {
			return fmt.Errorf("claiming this host's dataplane (nftables table inet %s) needs CAP_NET_ADMIN: run "+
				"calico-libnetwork as root: %w", ClaimTable, err)
		}
		err = lookErr
		break
	}
	if err != nil {
		return fmt.Errorf("claiming this host's dataplane (nftables table inet %s; owned tables need Linux "+
			"5.12 or later): %w", ClaimTable, err)
	}
	return nil
}

// holderComment is what the claim records about this process: "pid N: command line", cut to fit.
func holderComment() string {
	c := fmt.Sprintf("pid %d: %s", os.Getpid(), strings.Join(os.Args, " "))
	return strings.TrimSpace(c[:min(len(c), maxClaimComment)])
}

// createClaimTable creates the owned table in one nf_tables transaction. If it exists the kernel answers
// EPERM when another socket owns it, EEXIST otherwise.
func createClaimTable(conn *netlink.Conn, comment string) error {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // nf_tables attributes are in network order
	ae.String(unix.NFTA_TABLE_NAME, ClaimTable)
	ae.Uint32(unix.NFTA_TABLE_FLAGS, nftTableFlagOwner)
	udata := append([]byte{udataTableComment, byte(len(comment) + 1)}, comment...)
	ae.Bytes(nftaTableUserdata, append(udata, 0))
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	// Table changes are only accepted inside a batch.
	batch := func(typ uint16) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
			Data: nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)}
	}
	newTable := netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
		Data: append(nfgenmsg(unix.NFPROTO_INET, 0), attrs...),
	}
	if _, err := conn.SendMessages([]netlink.Message{batch(unix.NFNL_MSG_BATCH_BEGIN), newTable, batch(unix.NFNL_MSG_BATCH_END)}); err != nil {
		return err
	}
	_, err = conn.Receive() // the acknowledgement, or the error, of the new table
	return err
}

// readHolder returns the comment of the claim table ("" if it has none); ENOENT if there is no such table.
func readHolder(conn *netlink.Conn) (string, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_TABLE_NAME, ClaimTable)
	attrs, err := ae.Encode()
	if err != nil {
		return "", err
	}
	replies, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: nftMsgType(unix.NFT_MSG_GETTABLE), Flags: netlink.Request},
		Data:   append(nfgenmsg(unix.NFPROTO_INET, 0), attrs...),
	})
	if err != nil {
		return "", err
	}
	if len(replies) != 1 || len(replies[0].Data) < 4 {
		return "", nil
	}
	ad, err := netlink.NewAttributeDecoder(replies[0].Data[4:])
	if err != nil {
		return "", nil
	}
	for ad.Next() {
		if ad.Type() == nftaTableUserdata {
			return commentOf(ad.Bytes()), nil
		}
	}
	return "", nil
}

// commentOf finds the comment in table user data: type-length-value entries, the value NUL-terminated.
func commentOf(udata []byte) string {
	for len(udata) >= 2 {
		typ, n := udata[0], int(udata[1])
		if len(udata) < 2+n {
			return ""
		}
		if typ == udataTableComment {
			return strings.TrimRight(string(udata[2:2+n]), "\x00")
		}
		udata = udata[2+n:]
	}
	return ""
}

func nftMsgType(msg uint16) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// nfgenmsg is the header of every nfnetlink message: family, version, and resource ID (big-endian).
func nfgenmsg(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}
