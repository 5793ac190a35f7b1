package k8s

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// statefulSet runs node name as one pod with its own volume. One
// StatefulSet per node, not one of N replicas: every node has its own
// identity key, config and genesis membership entry, which a replica index
// cannot choose between.
func statefulSet(name string, l map[string]string, apiPort int32, o Options) *appsv1.StatefulSet {
	one := int32(1)
	selector := map[string]string{NameLabel: "dcep", InstanceLabel: name}
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(name, o.Namespace, l),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &one,
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: selector},
			// OnDelete: a new image or config takes effect when the
			// operator deletes the pod, one node at a time (a rolling
			// upgrade under the PDB's eye, docs/operations.md "Upgrades").
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       podSpec(name, apiPort, o),
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{dataClaim(o)},
			// Deleting the StatefulSet keeps the ledger's volume.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
}

func dataClaim(o Options) corev1.PersistentVolumeClaim {
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(o.StorageSize)},
			},
		},
	}
	if o.StorageClass != "" {
		pvc.Spec.StorageClassName = &o.StorageClass
	}
	return pvc
}

func podSpec(name string, apiPort int32, o Options) corev1.PodSpec {
	uid, yes, no := int64(UID), true, false
	keyMode := int32(0o440)
	onRootMismatch := corev1.FSGroupChangeOnRootMismatch
	grace := int64(30) // the node's shutdown is bounded at 15 s
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		AutomountServiceAccountToken:  &no, // the node never calls the Kubernetes API
		EnableServiceLinks:            &no,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &uid,
			// fsGroup makes the volume writable by the node's user.
			FSGroup: &uid, FSGroupChangePolicy: &onRootMismatch,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:  "dcepd",
			Image: o.Image,
			Args:  []string{"run", "--config", ConfigFile},
			Ports: []corev1.ContainerPort{
				{Name: "p2p", ContainerPort: P2PPort, Protocol: corev1.ProtocolTCP},
				{Name: "api", ContainerPort: apiPort, Protocol: corev1.ProtocolTCP},
			},
			ReadinessProbe: probe("/readyz", apiPort, 5, 3),
			// Liveness is /healthz (process up, ledger open), never
			// /readyz: a node without a quorum is alive and must not be
			// restarted for what its peers do.
			LivenessProbe: probe("/healthz", apiPort, 10, 6),
			// A node replaying a long log or installing a snapshot may
			// take minutes before /healthz answers.
			StartupProbe: probe("/healthz", apiPort, 5, 120),
			VolumeMounts: []corev1.VolumeMount{
				{Name: "data", MountPath: DataDir},
				{Name: "config", MountPath: ConfigDir, ReadOnly: true},
				{Name: "node-key", MountPath: KeyDir, ReadOnly: true},
			},
			SecurityContext: &corev1.SecurityContext{
				RunAsNonRoot: &yes, RunAsUser: &uid,
				ReadOnlyRootFilesystem:   &yes,
				AllowPrivilegeEscalation: &no,
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}}},
			{Name: "node-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: name + "-node-key", DefaultMode: &keyMode}}},
		},
	}
}

func probe(path string, port int32, periodS, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port)}},
		PeriodSeconds:    periodS,
		TimeoutSeconds:   2,
		FailureThreshold: failures,
	}
}
