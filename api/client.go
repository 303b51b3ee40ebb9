package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// maxResponse bounds what the client reads from the socket (a status of
// thousands of instances is well under this).
const maxResponse = 64 << 20

// Client talks to a running vipd over its control socket.
type Client struct {
	socketPath string
	http       *http.Client
}

// NewClient returns a client for the vipd listening on socketPath.
func NewClient(socketPath string) *Client {
	c := &Client{socketPath: socketPath}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &UnreachableError{SocketPath: socketPath, Err: err}
			}
			return conn, nil
		},
		DisableKeepAlives: true,
	}}
	return c
}

// UnreachableError says the control socket could not be connected to.
type UnreachableError struct {
	SocketPath string
	Err        error
}

func (e *UnreachableError) Error() string {
	cause := e.Err
	var op *net.OpError
	if errors.As(cause, &op) {
		cause = op.Err // "connect: no such file or directory", without the address noise
	}
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, os.ErrPermission) {
		return fmt.Sprintf("cannot reach vipd at %s: permission denied (the control socket is mode 0600: run as the user running vipd, usually root) (%v)", e.SocketPath, cause)
	}
	return fmt.Sprintf("cannot reach vipd at %s: is `vipd run` running? (%v)", e.SocketPath, cause)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Status returns the running node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, pathStatus, &st); err != nil {
		return Status{}, err
	}
	return st, nil
}

// Reload asks vipd to re-read its configuration and apply the difference
// (the same as SIGHUP). When the new configuration is rejected the error
// carries its FILE:LINE diagnostics and the running configuration stays.
func (c *Client) Reload(ctx context.Context) error {
	var ok okBody
	if err := c.do(ctx, http.MethodPost, pathReload, &ok); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return fmt.Errorf("reload rejected, running configuration kept:\n%s", re.Msg)
		}
		return err
	}
	if !ok.OK {
		return errors.New("reload: vipd did not confirm the reload")
	}
	return nil
}

// Maintenance puts the node or one instance in or out of maintenance.
func (c *Client) Maintenance(ctx context.Context, req MaintRequest) error {
	return c.post(ctx, pathMaint, req)
}

// OverridePriority sets or clears the operator's priority override.
func (c *Client) OverridePriority(ctx context.Context, req PriorityRequest) error {
	return c.post(ctx, pathPriority, req)
}

// Upgrade asks the daemon to re-execute the binary at its path in place.
// The answer comes before the re-execution: wait for Status to answer
// again to see the result.
func (c *Client) Upgrade(ctx context.Context) (UpgradeResult, error) {
	var res UpgradeResult
	if err := c.doBody(ctx, http.MethodPost, pathUpgrade, struct{}{}, &res); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return res, errors.New(re.Msg)
		}
		return res, err
	}
	return res, nil
}

// Fleet returns the fleet view of the daemon's gossip cluster.
func (c *Client) Fleet(ctx context.Context) (Fleet, error) {
	var f Fleet
	if err := c.do(ctx, http.MethodGet, pathFleet, &f); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return f, errors.New(re.Msg)
		}
		return f, err
	}
	return f, nil
}

// LVS returns the daemon's IPVS side (vipd lvs).
func (c *Client) LVS(ctx context.Context) (LVS, error) {
	var l LVS
	if err := c.do(ctx, http.MethodGet, pathLVS, &l); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return l, errors.New(re.Msg)
		}
		return l, err
	}
	return l, nil
}

// Join asks the daemon to join the gossip cluster through addrs.
func (c *Client) Join(ctx context.Context, addrs []string) (JoinResult, error) {
	var res JoinResult
	if err := c.doBody(ctx, http.MethodPost, pathJoin, JoinRequest{Addrs: addrs}, &res); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return res, errors.New(re.Msg)
		}
		return res, err
	}
	return res, nil
}

// Keys sends a gossip keyring operation to the daemon, which carries it
// to every node of the fleet, and returns each node's answer. A refusal
// (gossip off or not encrypted, a malformed key) is an error.
func (c *Client) Keys(ctx context.Context, op KeyOp) (KeysResult, error) {
	var res KeysResult
	if err := c.doBody(ctx, http.MethodPost, pathKeys, op, &res); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return res, errors.New(re.Msg)
		}
		return res, err
	}
	return res, nil
}

func (c *Client) post(ctx context.Context, path string, body any) error {
	var ok okBody
	if err := c.doBody(ctx, http.MethodPost, path, body, &ok); err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == http.StatusBadRequest {
			return errors.New(re.Msg)
		}
		return err
	}
	if !ok.OK {
		return errors.New("vipd did not confirm the request")
	}
	return nil
}

// RemoteError is an error answered by vipd itself.
type RemoteError struct {
	Code int
	Msg  string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("vipd answered %d: %s", e.Code, e.Msg) }

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.doBody(ctx, method, path, nil, out)
}

func (c *Client) doBody(ctx context.Context, method, path string, in, out any) error {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vipd"+path, reqBody)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *UnreachableError
		if errors.As(err, &ue) {
			return ue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("vipd at %s did not answer in time: %w", c.socketPath, ctx.Err())
		}
		return fmt.Errorf("vipd at %s: %w", c.socketPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("vipd at %s: read answer: %w", c.socketPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			return &RemoteError{Code: resp.StatusCode, Msg: eb.Error}
		}
		return &RemoteError{Code: resp.StatusCode, Msg: strings.TrimSpace(string(body))}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("vipd at %s: malformed answer: %w", c.socketPath, err)
	}
	return nil
}
