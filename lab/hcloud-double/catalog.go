package main

// The read-only catalog: locations, server types and images. Only what a lab VPS can truthfully
// be: every server boots the lab's Debian 12 image, so debian-12 is the one image offered (one per
// architecture, as Hetzner lists them).

import (
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud/schema"
)

var locations = []schema.Location{
	{ID: 1, Name: "fsn1", Description: "Falkenstein DC Park 1", Country: "DE", City: "Falkenstein", Latitude: 50.47612, Longitude: 12.370071, NetworkZone: "eu-central"},
	{ID: 2, Name: "nbg1", Description: "Nuremberg DC Park 1", Country: "DE", City: "Nuremberg", Latitude: 49.452102, Longitude: 11.076665, NetworkZone: "eu-central"},
	{ID: 3, Name: "hel1", Description: "Helsinki DC Park 1", Country: "FI", City: "Helsinki", Latitude: 60.169855, Longitude: 24.938379, NetworkZone: "eu-central"},
	{ID: 4, Name: "ash", Description: "Ashburn, VA", Country: "US", City: "Ashburn, VA", Latitude: 39.045821, Longitude: -77.487073, NetworkZone: "us-east"},
	{ID: 5, Name: "hil", Description: "Hillsboro, OR", Country: "US", City: "Hillsboro, OR", Latitude: 45.54222, Longitude: -122.951924, NetworkZone: "us-west"},
	{ID: 6, Name: "sin", Description: "Singapore", Country: "SG", City: "Singapore", Latitude: 1.283333, Longitude: 103.833333, NetworkZone: "ap-southeast"},
}

func serverTypeLocations() []schema.ServerTypeLocation {
	out := make([]schema.ServerTypeLocation, len(locations))
	for i, l := range locations {
		out[i] = schema.ServerTypeLocation{ID: l.ID, Name: l.Name, Available: true, Recommended: true}
	}
	return out
}

var serverTypes = []schema.ServerType{
	{ID: 22, Name: "cx22", Description: "CX22", Category: "cost_optimized", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "x86", IncludedTraffic: 21990232555520, Prices: []schema.PricingServerTypePrice{}, Locations: serverTypeLocations()},
	{ID: 23, Name: "cx32", Description: "CX32", Category: "cost_optimized", Cores: 4, Memory: 8, Disk: 80, StorageType: "local", CPUType: "shared", Architecture: "x86", IncludedTraffic: 21990232555520, Prices: []schema.PricingServerTypePrice{}, Locations: serverTypeLocations()},
	{ID: 45, Name: "cax11", Description: "CAX11", Category: "cost_optimized", Cores: 2, Memory: 4, Disk: 40, StorageType: "local", CPUType: "shared", Architecture: "arm", IncludedTraffic: 21990232555520, Prices: []schema.PricingServerTypePrice{}, Locations: serverTypeLocations()},
}

func strp(s string) *string { return &s }

var imageCreated = time.Date(2023, 6, 13, 6, 0, 0, 0, time.UTC)

var images = []schema.Image{
	{ID: 114690387, Status: "available", Type: "system", Name: strp("debian-12"), Description: "Debian 12", DiskSize: 5, Created: &imageCreated, OSFlavor: "debian", OSVersion: strp("12"), Architecture: "x86", RapidDeploy: true, Labels: map[string]string{}},
	{ID: 114690389, Status: "available", Type: "system", Name: strp("debian-12"), Description: "Debian 12", DiskSize: 5, Created: &imageCreated, OSFlavor: "debian", OSVersion: strp("12"), Architecture: "arm", RapidDeploy: true, Labels: map[string]string{}},
}

func locationByName(name string) *schema.Location {
	for i := range locations {
		if locations[i].Name == name {
			return &locations[i]
		}
	}
	return nil
}

func serverTypeByIDOrName(v schema.IDOrName) *schema.ServerType {
	for i := range serverTypes {
		if (v.ID != 0 && serverTypes[i].ID == v.ID) || (v.ID == 0 && serverTypes[i].Name == v.Name) {
			return &serverTypes[i]
		}
	}
	return nil
}

// imageFor finds an image by ID, or by name for the server type's architecture.
func imageFor(v schema.IDOrName, arch string) *schema.Image {
	for i := range images {
		img := &images[i]
		if v.ID != 0 && img.ID == v.ID {
			return img
		}
		if v.ID == 0 && img.Name != nil && *img.Name == v.Name && img.Architecture == arch {
			return img
		}
	}
	return nil
}
