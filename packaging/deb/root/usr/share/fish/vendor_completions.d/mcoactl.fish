# fish completion for mcoactl(8)

set -l commands status bindings interfaces register deregister priority policy policies reload hint monitor metrics cache genkey help version

# What the daemon has: BIDs and policy names (nothing if it does not answer).
function __mcoactl_ask
    command -q mcoactl; or return
    set -l tokens (commandline -opc)
    set -l sock
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case -socket --socket
                set -l j (math $i + 1)
                test $j -le (count $tokens); and set sock -socket $tokens[$j]
            case '-socket=*' '--socket=*'
                set sock -socket (string replace -r '^--?socket=' '' -- $tokens[$i])
        end
    end
    mcoactl $sock $argv 2>/dev/null
end

function __mcoactl_bids
    __mcoactl_ask bindings | awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1 }' | sort -un
end

function __mcoactl_policies
    __mcoactl_ask policy list | awk 'NR > 1 { print $1 }'
end

# Options of every command, before or after it (-x and --x are the same).
complete -c mcoactl -o socket -l socket -r -F -d 'control socket'
complete -c mcoactl -o json -l json -d 'print JSON objects; errors too'
complete -c mcoactl -s h -l help -d 'help'
complete -c mcoactl -o version -l version -d "print mcoactl's version"

complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a status -d 'daemon summary and health checks'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a bindings -d 'the Binding Update List'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a interfaces -d 'interfaces, care-of addresses and BIDs'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a register -d 'register again now'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a deregister -d 'remove bindings'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a priority -d 'set the priority (0-255) of a BID'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a policy -d 'flow policies'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a reload -d 're-read the configuration'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a hint -d 'tell mcoad an interface changed'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a monitor -d 'follow state changes'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a metrics -d 'Prometheus metrics'
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a cache -d "mcoa-ha's binding cache"
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a genkey -d "make an MN-HA key"
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a help -d "a command's help"
complete -c mcoactl -f -n "not __fish_seen_subcommand_from $commands" -a version -d "print mcoactl's version"

# Arguments.
complete -c mcoactl -f -n '__fish_seen_subcommand_from register deregister' -a '(__mcoactl_bids)' -d BID
complete -c mcoactl -f -n '__fish_seen_subcommand_from deregister' -o all -l all -d 'every binding'
complete -c mcoactl -f -n '__fish_seen_subcommand_from priority; and test (count (commandline -opc)) -le 2' -a '(__mcoactl_bids)' -d BID
complete -c mcoactl -f -n '__fish_seen_subcommand_from hint; and not __fish_seen_subcommand_from up down connectivity' -a 'up down connectivity'
complete -c mcoactl -f -n '__fish_seen_subcommand_from hint; and __fish_seen_subcommand_from up down connectivity' -a '(__fish_print_interfaces)'
complete -c mcoactl -f -n '__fish_seen_subcommand_from policy policies; and not __fish_seen_subcommand_from list add delete del rm' -a 'list add delete'
complete -c mcoactl -f -n '__fish_seen_subcommand_from policy policies; and __fish_seen_subcommand_from delete del rm' -a '(__mcoactl_policies)' -d policy
set -l padd '__fish_seen_subcommand_from policy policies; and __fish_seen_subcommand_from add'
complete -c mcoactl -f -n $padd -o name -l name -r -d 'the policy name'
complete -c mcoactl -f -n $padd -o prefer -l prefer -r -d 'interface globs or BIDs, best first, comma-separated'
complete -c mcoactl -f -n $padd -o protocol -l protocol -r -a 'tcp udp icmpv6 any' -d protocol
complete -c mcoactl -f -n $padd -o src-prefix -l src-prefix -r -d 'source prefix'
complete -c mcoactl -f -n $padd -o dst-prefix -l dst-prefix -r -d 'destination prefix'
complete -c mcoactl -f -n $padd -o src-port -l src-port -r -d 'source port or range'
complete -c mcoactl -f -n $padd -o dst-port -l dst-port -r -d 'destination port or range'
complete -c mcoactl -f -n $padd -o user -l user -r -a '(__fish_complete_users)' -d 'local traffic of a user'
complete -c mcoactl -f -n $padd -o cgroup -l cgroup -r -d 'local traffic of a cgroup v2 path'
complete -c mcoactl -f -n '__fish_seen_subcommand_from genkey' -o spi -l spi -r -d 'security parameter index'
complete -c mcoactl -f -n '__fish_seen_subcommand_from genkey' -o home-address -l home-address -r -d "the mobile node's home address"
complete -c mcoactl -f -n '__fish_seen_subcommand_from help; and not __fish_seen_subcommand_from status bindings interfaces register deregister priority policy reload hint monitor metrics cache genkey version' -a "$commands"
