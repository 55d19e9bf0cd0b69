// The KRaft controller quorum as the cluster sees it, for `scripts/services quorum` (the cached jars
// have no kafka-tools, hence no kafka-metadata-quorum). Run as a single-file program:
//   java -cp '.services/cache/kafka-VERSION/lib/*' scripts/kafka/Quorum.java CONTROLLERS [CLIENT.properties]
// CONTROLLERS are the controller listeners (127.0.1.1:9093,...): asked directly (bootstrap.controllers),
// the quorum answers as soon as it has a leader; through a broker, the request would be forwarded to
// the controller that broker last knew, and wait for it for 30 s if that one was cut off.
// Prints the leader, then one line per voter and observer: its log end offset, its lag behind the
// high watermark, and how long ago it last fetched / was caught up. Exit 1 when no answer comes
// within 10 s (no quorum, or no node reachable). CLIENT.properties: more client settings (the secure
// stack's TLS and client certificate).
import java.io.FileReader;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.QuorumInfo;

public class Quorum {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_CONTROLLERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "10000");
        // A node that is cut off drops the SYN: give up on it after 2 s and try the next one.
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, "2000");
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "2000");
        if (args.length > 1) {
            try (FileReader client = new FileReader(args[1])) {
                props.load(client);
            }
        }
        try (Admin admin = Admin.create(props)) {
            QuorumInfo q = admin.describeMetadataQuorum().quorumInfo().get(10, TimeUnit.SECONDS);
            System.out.printf("leader %d epoch %d high-watermark %d%n", q.leaderId(), q.leaderEpoch(), q.highWatermark());
            long now = System.currentTimeMillis();
            for (QuorumInfo.ReplicaState r : q.voters()) print("voter", r, q, now);
            for (QuorumInfo.ReplicaState r : q.observers()) print("observer", r, q, now);
        } catch (Exception e) {
            System.err.println("quorum: " + e);
            System.exit(1);
        }
    }

    static void print(String role, QuorumInfo.ReplicaState r, QuorumInfo q, long now) {
        System.out.printf("%s %d log-end %d lag %d last-fetch %s last-caught-up %s%n", role, r.replicaId(),
                r.logEndOffset(), q.highWatermark() - r.logEndOffset(), ago(r.lastFetchTimestamp().orElse(-1), now),
                ago(r.lastCaughtUpTimestamp().orElse(-1), now));
    }

    static String ago(long ts, long now) {
        return ts < 0 ? "-" : (now - ts) + "ms";
    }
}
